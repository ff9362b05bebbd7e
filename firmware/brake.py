"""Automatic emergency braking: the board stops short of what its ranger sees ahead, whatever the host does.

Runs on the board (`app.Firmware`, every control period, so it holds when the host stalls
or the link drops), in the simulator's car (`sim.world`, which stands in for the board
under `--sim`), and gives the host its stopping distance (`nodes.safety` slows the car
before this has to act). One implementation of the rule, in MicroPython's language.

A reading is millimetres from the ranger; 0 is a failed reading (dropped: an ultrasonic
ranger's echo timing out early), `NO_RANGE` (0xFFFF) nothing within range. The distance
the brake judges is the median of the last three readings taken, so one spike or one
dropout moves nothing. It engages when that distance is within the stopping distance for
the car's measured speed v (m/s):

    MARGIN_MM + v * REACTION_MS + v^2 / (2 * DECEL_MM_S2)

(the margin left in front of the ranger, the way covered before the brake acts, and the
way covered while the wheels slow), and then refuses any forward motion: the mean of the
two wheel speeds is taken out (reversing and turning on the spot stay allowed). It
releases when the distance is RELEASE_MM beyond the stopping distance for the speed then
(standing still: beyond MARGIN_MM + RELEASE_MM, from where the car may creep closer only
as slowly as the rule allows).
"""

NO_RANGE = 0xFFFF
MARGIN_MM = 40
REACTION_MS = 30  # a reading's age in the median (10 ms) and a control period (10 ms), with room
DECEL_MM_S2 = 3000  # what a small car's wheels can shed without sliding, with room
RELEASE_MM = 30
WINDOW = 3


def stopping_distance_mm(speed_mm_s: float) -> float:
    """The distance (mm, from the ranger) within which an obstacle must stop a car moving at this speed."""
    v = max(0.0, speed_mm_s)
    return MARGIN_MM + v * REACTION_MS / 1000 + v * v / (2 * DECEL_MM_S2)


def median_mm(readings: "list[int]") -> int:
    """The median of up to three distances (mm), or NO_RANGE for none."""
    if not readings:
        return NO_RANGE
    ordered = sorted(readings)
    return ordered[len(ordered) // 2]


class RangeMedian:
    """The ranger's distance as the brakes judge it: the median of the last WINDOW readings, failed ones left out."""

    def __init__(self) -> None:
        self.readings: list[int] = []  # the last WINDOW valid readings, mm (NO_RANGE for nothing in range)
        self.distance_mm = NO_RANGE  # the filtered distance (NO_RANGE until WINDOW readings came)

    def update(self, range_mm: int) -> bool:
        """Take one reading (mm; 0 a failed one); whether the filter has its window full."""
        if range_mm > 0:
            self.readings.append(min(range_mm, NO_RANGE))
            if len(self.readings) > WINDOW:
                self.readings.pop(0)
        if len(self.readings) < WINDOW:
            return False
        self.distance_mm = median_mm(self.readings)
        return True


class ObstacleBrake:
    """Feed it every ranger reading with the car's speed; `engaged` says whether forward motion is refused."""

    def __init__(self) -> None:
        self.ranger = RangeMedian()
        self.engaged = False
        self.engagements = 0

    def update(self, range_mm: int, speed_mm_s: float) -> bool:
        """Take one reading (mm; 0 a failed one) at this speed (mm/s, forward positive); True while engaged."""
        if not self.ranger.update(range_mm):
            return self.engaged
        distance = self.ranger.distance_mm
        if self.engaged:
            if distance > stopping_distance_mm(speed_mm_s) + RELEASE_MM:
                self.engaged = False
        elif distance <= stopping_distance_mm(speed_mm_s):
            self.engaged = True
            self.engagements += 1
        return self.engaged

    def limit(self, left: float, right: float) -> "tuple[float, float]":
        """The wheel set-points allowed now: unchanged when released, without forward motion when engaged."""
        if not self.engaged:
            return left, right
        forward = (left + right) / 2
        if forward <= 0:
            return left, right
        return left - forward, right - forward
