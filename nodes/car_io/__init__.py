"""car_io: the only node that touches the car: the simulator, or the board (`--hw --port`).

`python -m nodes.car_io` runs the back end CAR_BACKEND names (`car launch --sim|--hw`),
chosen through one table (`BACKENDS`, as python-can's interfaces are) and imported only
when chosen: `sim` (nodes.car_io.sim) or `hw` (nodes.car_io.board); on the car nothing of
the simulator is loaded. Both drive the car through hal.interfaces (wheels, sensors,
camera), take the graph's events through nodes.car_io.inputs (implemented once: commands
through the one drive policy, nodes.drive.DriveGuard, the status line, the pilot's safety
events), and keep only what differs: the board's wall-clock loop with its camera thread
and reconnection, the simulator's lockstep with the graph.

Inputs: `cmd` ({"left": m/s, "right": m/s}; with the metadata of the observation that
caused it, or without it from a free-running source such as teleop), `tick` (once a
second: lap, speed and cross-track error for `car launch`'s status line), `safety`
(optional: the pilot's safety events, kept in the run report with where the car was).
Outputs: `image` (camera frames), `sensors` (every 10 ms of car time), `pose` (ground
truth, simulator only), `safety` (car_io's own stops: nodes.safety.SafetyEvent).

The simulated car runs in lockstep with the graph, in cycles of 10 ms of car time. Each
cycle's observations go out together, each with the cycle's number (`frame`) and its kind
(`observation`: `image` when a camera frame falls due, 30 times a second; `pose`, the
ground truth; `sensors`, with `"image": true` when a frame went out just before) in its
metadata. A pilot passes that metadata back on its command, so car_io knows which
observation a command answers, and so how the pilot is paced: one that answers every
reading is waited for every cycle, one that answers frames only in the cycles with a
frame; nothing in the graph's file has to say which. The answer is applied after a
modelled processing time (10 ms for a frame, 5 ms for a reading). `CAR_REALTIME_FACTOR`
paces the cycles against the wall clock (1: real time; 0: as fast as the nodes answer,
for tests and `car collect`). Either way all timing is in simulated time, so a run is the
same whatever the machine's speed.

Safety (nodes.drive.DriveGuard, the one policy of both back ends): commands are clamped to
`MAX_WHEEL_SPEED` and slowed for an obstacle ahead; a malformed command stops the wheels;
with no command for 200 ms they stop, and at once when the pilot's output closes; the
board's own brake and a lost board are said. Each stop goes out on `safety`.

On the board (`--hw`), a lost board (unplugged, reset, silent) does not end the run: the
wheels are commanded to stop, the status says "board lost, reconnecting", the port is
reopened and the handshake repeated until the board answers, and the run goes on. Only
after `CAR_BOARD_GIVE_UP_S` (`car launch --board-give-up S`, default 10 s) does car_io
end, with a clear error.
"""
