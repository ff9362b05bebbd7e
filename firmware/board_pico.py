"""Pin map of the Raspberry Pi Pico (RP2040) car board."""

BOARD = "pico"
PIN_MAP_VERSION = 1
MOTOR_LEFT = (16, 17, 18)  # PWM, IN1, IN2 of a TB6612FNG channel (an L298N works the same)
MOTOR_RIGHT = (21, 20, 19)
MOTOR_STANDBY = 22
PWM_FREQ = 20000
ENCODER_LEFT = (2, 3)  # channels A, B
ENCODER_RIGHT = (4, 5)
LINE_MUX_SELECT = (6, 7, 8)  # a CD4051 multiplexer: the RP2040 has only three ADC inputs
LINE_MUX_ADC = 26
RANGE_TRIG = 14  # HC-SR04
RANGE_ECHO = 15
IMU_I2C = (0, 12, 13)  # bus id, SDA, SCL: MPU-6050 at 0x68
BATTERY_ADC = 27
BATTERY_DIVIDER = 4.0  # the ADC sees battery voltage / this
WHEEL_MM_PER_TICK = 6.2832 * 33 / 390  # wheel circumference over encoder counts per wheel turn
PID_GAINS = (0.0015, 0.02, 0.0, 0.001)  # kp, ki, kd per mm/s of error; kf: duty per mm/s of target
