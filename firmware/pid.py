"""A wheel-speed PID with feed-forward, output clamping and anti-windup (MicroPython and CPython)."""


class Pid:
    """duty = kf * target + kp * error + ki * integral(error) + kd * d(error)/dt, clamped to [-1, 1]."""

    def __init__(self, kp, ki, kd, kf, limit=1.0):
        self.kp = kp
        self.ki = ki
        self.kd = kd
        self.kf = kf
        self.limit = limit
        self.reset()

    def reset(self):
        """Forget the integral and the last error (after a stop)."""
        self._integral = 0.0
        self._last_error = 0.0

    def update(self, target, measured, dt):
        """The duty for this step; dt in seconds."""
        error = target - measured
        derivative = (error - self._last_error) / dt if dt > 0 else 0.0
        self._last_error = error
        integral = self._integral + error * dt
        duty = self.kf * target + self.kp * error + self.ki * integral + self.kd * derivative
        if -self.limit < duty < self.limit:
            self._integral = integral  # anti-windup: integrate only while not saturated
        return max(-self.limit, min(self.limit, duty))
