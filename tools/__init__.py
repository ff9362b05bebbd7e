"""The smart car's own `car` commands (the `car.commands` entry point): `car flash`, `car board`, `car calibrate`.

They bring up a real car: put the firmware on the board, look at it, measure the camera,
motors and line sensors. They use hal's devices and the car description; hal itself only
drives the hardware.
"""
