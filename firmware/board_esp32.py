"""Pin map of the ESP32 car board (an ESP32 DevKit)."""

BOARD = "esp32"
PIN_MAP_VERSION = 2
MOTOR_LEFT = (25, 26, 27)  # PWM, IN1, IN2 of a TB6612FNG channel
MOTOR_RIGHT = (13, 14, 4)
MOTOR_STANDBY = 33
PWM_FREQ = 20000
ENCODER_LEFT = (18, 19)  # channels A, B: pins with internal pull-ups (34-39 have none)
ENCODER_RIGHT = (16, 17)
LINE_MUX_SELECT = (23, 2, 15)  # a CD4051 multiplexer
LINE_MUX_ADC = 36  # ADC1 (ADC2 stops working while Wi-Fi runs)
RANGE_TRIG = 5  # HC-SR04
RANGE_ECHO = 39  # input only; the echo is 5 V: through a divider
IMU_I2C = (0, 21, 22)  # bus id, SDA, SCL: MPU-6050 at 0x68
BATTERY_ADC = 34  # ADC1, input only
BATTERY_DIVIDER = 4.0  # the ADC sees battery voltage / this
WHEEL_MM_PER_TICK = 6.2832 * 33 / 390  # wheel circumference over encoder counts per wheel turn
PID_GAINS = (0.0015, 0.02, 0.0, 0.001)  # kp, ki, kd per mm/s of error; kf: duty per mm/s of target
