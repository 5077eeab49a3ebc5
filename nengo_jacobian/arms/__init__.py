"""Self-contained planar robot arms for force-control examples and tests (numpy only).

Written from textbook equations (Spong, Hutchinson & Vidyasagar, *Robot Modeling and
Control*; Khatib 1987 for operational space control), so the examples need no robotics
dependency:

- `TwoLinkArm` (closed form, REACH-model defaults) and `PlanarArm` (any number of
  links): kinematics, Jacobians and Euler–Lagrange dynamics, batched over leading axes.
- `step`: semi-implicit Euler or RK4.
- `OperationalSpaceController`: takes the Jacobian and hand position from the arm or
  from anywhere else (e.g. a neural network), and exposes the adaptive-control
  training signal.
- The REACH centre-out task (`centre_out_targets`, `out_and_back`, `run_reaches`,
  `curl_field`, `REACH_JOINT_BOX`) and its metrics (`reaching_metrics`, `summarize`,
  `jacobian_relative_error`).

Examples
--------
The analytic baseline of the REACH task:

>>> from nengo_jacobian import arms
>>> arm = arms.TwoLinkArm()
>>> ctrl = arms.OperationalSpaceController(arm, kp=50)
>>> result = arms.run_reaches(
...     arm, lambda q, dq, target, t: ctrl(q, dq, target),
...     arms.out_and_back(arms.centre_out_targets()),
...     q0=arm.inverse_kinematics(arms.REACH_CENTRE))
>>> summary = result.summary()
>>> summary["n_missed"], summary["max_deviation_mean"] < 0.005
(0, True)
"""

from nengo_jacobian.arms._base import Arm
from nengo_jacobian.arms.control import (
    OperationalSpaceController,
    OSCTerms,
    corrupt_jacobian,
)
from nengo_jacobian.arms.integrate import METHODS, step
from nengo_jacobian.arms.metrics import (
    ReachMetrics,
    jacobian_relative_error,
    reaching_metrics,
    summarize,
)
from nengo_jacobian.arms.planar import PlanarArm
from nengo_jacobian.arms.reach import (
    REACH_CENTRE,
    REACH_JOINT_BOX,
    CurlField,
    JointBox,
    ReachResult,
    centre_out_targets,
    curl_field,
    out_and_back,
    run_reaches,
    sample_joint_box,
)
from nengo_jacobian.arms.two_link import TwoLinkArm

__all__ = [
    "METHODS",
    "REACH_CENTRE",
    "REACH_JOINT_BOX",
    "Arm",
    "CurlField",
    "JointBox",
    "OSCTerms",
    "OperationalSpaceController",
    "PlanarArm",
    "ReachMetrics",
    "ReachResult",
    "TwoLinkArm",
    "centre_out_targets",
    "corrupt_jacobian",
    "curl_field",
    "jacobian_relative_error",
    "out_and_back",
    "reaching_metrics",
    "run_reaches",
    "sample_joint_box",
    "step",
    "summarize",
]
