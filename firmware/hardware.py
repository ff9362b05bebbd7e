"""The board's peripherals through MicroPython's `machine` module, for `app.Firmware`.

Motors: PWM on an H-bridge with two direction pins per wheel. Encoders: quadrature, counted
in pin interrupts. Line sensors: five analog sensors read through a multiplexer. Range:
HC-SR04 (trigger pulse, echo time). Yaw rate: the MPU-6050's gyro z. Battery: an ADC behind
a divider. Pins come from the board file (`board_pico.py`, `board_esp32.py`).
"""

import machine

IMU_ADDRESS = 0x68
IMU_PWR_MGMT_1 = 0x6B
IMU_GYRO_Z = 0x47
GYRO_LSB_PER_DPS = 131.0
SOUND_MM_PER_US = 0.343
RANGE_TIMEOUT_US = 12000  # about 2 m there and back


class Motor:
    """One wheel's H-bridge channel."""

    def __init__(self, pins, freq):
        pwm, in1, in2 = pins
        self.pwm = machine.PWM(machine.Pin(pwm))
        self.pwm.freq(freq)
        self.in1 = machine.Pin(in1, machine.Pin.OUT)
        self.in2 = machine.Pin(in2, machine.Pin.OUT)
        self.set(0.0)

    def set(self, duty):
        """Duty in [-1, 1]; negative turns backwards, 0 brakes."""
        duty = max(-1.0, min(1.0, duty))
        self.in1.value(1 if duty > 0 else 0)
        self.in2.value(1 if duty < 0 else 0)
        self.pwm.duty_u16(int(abs(duty) * 65535))


class Encoder:
    """A quadrature encoder counted on both edges of channel A."""

    def __init__(self, pins):
        self.count = 0
        self.a = machine.Pin(pins[0], machine.Pin.IN, machine.Pin.PULL_UP)
        self.b = machine.Pin(pins[1], machine.Pin.IN, machine.Pin.PULL_UP)
        self.a.irq(trigger=machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING, handler=self._edge)

    def _edge(self, pin):
        if self.a.value() == self.b.value():
            self.count -= 1
        else:
            self.count += 1


class Hardware:
    """Everything `app.Firmware` reads and drives, for one board file."""

    def __init__(self, board):
        self.left = Motor(board.MOTOR_LEFT, board.PWM_FREQ)
        self.right = Motor(board.MOTOR_RIGHT, board.PWM_FREQ)
        self.standby = machine.Pin(board.MOTOR_STANDBY, machine.Pin.OUT)
        self.standby.value(1)
        self.encoders = (Encoder(board.ENCODER_LEFT), Encoder(board.ENCODER_RIGHT))
        self.mux = [machine.Pin(p, machine.Pin.OUT) for p in board.LINE_MUX_SELECT]
        self.line_adc = machine.ADC(machine.Pin(board.LINE_MUX_ADC))
        self.trig = machine.Pin(board.RANGE_TRIG, machine.Pin.OUT)
        self.echo = machine.Pin(board.RANGE_ECHO, machine.Pin.IN)
        bus, sda, scl = board.IMU_I2C
        self.i2c = machine.I2C(bus, sda=machine.Pin(sda), scl=machine.Pin(scl), freq=400000)
        self.imu = IMU_ADDRESS in self.i2c.scan()
        if self.imu:
            self.i2c.writeto_mem(IMU_ADDRESS, IMU_PWR_MGMT_1, b"\x00")  # wake up
        self.battery_adc = machine.ADC(machine.Pin(board.BATTERY_ADC))
        self.battery_divider = board.BATTERY_DIVIDER

    def set_duty(self, left, right):
        """Both wheels' duties in [-1, 1]."""
        self.left.set(left)
        self.right.set(right)

    def read_ticks(self):
        """Encoder counts since start (left, right)."""
        return self.encoders[0].count, self.encoders[1].count

    def read_line(self):
        """Five line sensors, left to right, 0 (bright floor) .. 255 (black tape)."""
        values = []
        for channel in range(5):
            for bit, pin in enumerate(self.mux):
                pin.value((channel >> bit) & 1)
            values.append(255 - (self.line_adc.read_u16() >> 8))
        return values

    def read_yaw_mrad(self):
        """Yaw rate in mrad/s, counter-clockwise positive (0 without an IMU)."""
        if not self.imu:
            return 0
        raw = self.i2c.readfrom_mem(IMU_ADDRESS, IMU_GYRO_Z, 2)
        value = (raw[0] << 8) | raw[1]
        if value >= 0x8000:
            value -= 0x10000
        return int(value / GYRO_LSB_PER_DPS * 17.453292)

    def read_range_mm(self):
        """Distance to the obstacle ahead in mm, or 0xFFFF when nothing echoes in range."""
        self.trig.value(0)
        self.trig.value(1)
        self.trig.value(0)
        echo_us = machine.time_pulse_us(self.echo, 1, RANGE_TIMEOUT_US)
        if echo_us < 0:
            return 0xFFFF
        return min(0xFFFE, int(echo_us * SOUND_MM_PER_US / 2))

    def read_battery_mv(self):
        """Battery voltage in mV."""
        return int(self.battery_adc.read_u16() * 3300 * self.battery_divider / 65535)
