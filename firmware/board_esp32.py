"""Pin map of the ESP32 car board."""

BOARD = "esp32"
PIN_MAP_VERSION = 1
MOTOR_LEFT = (25, 26, 27)  # PWM, IN1, IN2
MOTOR_RIGHT = (14, 12, 13)
MOTOR_STANDBY = 33
PWM_FREQ = 20000
ENCODER_LEFT = (34, 35)
ENCODER_RIGHT = (36, 39)
LINE_MUX_SELECT = (16, 17, 18)
LINE_MUX_ADC = 32
RANGE_TRIG = 5
RANGE_ECHO = 18
IMU_I2C = (0, 21, 22)
BATTERY_ADC = 35
BATTERY_DIVIDER = 4.0
WHEEL_MM_PER_TICK = 6.2832 * 33 / 390  # wheel circumference over encoder counts per wheel turn
PID_GAINS = (0.0015, 0.02, 0.0, 0.001)  # kp, ki, kd per mm/s of error; kf: duty per mm/s of target
