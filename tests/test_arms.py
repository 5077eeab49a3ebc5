"""Planar arms, operational space control and the REACH task (`nengo_jacobian.arms`).

Everything here is float64 numpy. Finite-difference tolerances follow from the step:
central differences with step h have truncation error ~h²·|f'''|/6 and rounding error
~1e-16·|f|/h; with h = 1e-6 and |f| ~ 3 that is ~3e-10, so 1e-8 has 30× margin.
"""

import numpy as np
import pytest

from nengo_jacobian import arms

H = 1e-6  # central-difference step (see module docstring)
FD_ATOL = 1e-8

REACH = dict(lengths=(1.5, 1.3), masses=(1.98, 1.32), izz=(0.4, 0.2))
THREE_LINK = dict(
    lengths=(2.0, 1.2, 0.7), masses=(1.98, 1.32, 0.8), izz=(0.66, 0.16, 0.033)
)
GRAVITY = (0.7, -9.81)  # tilted so both gravity components are exercised


def make_arm(kind, gravity_vector=None):
    if kind == "two_link":
        return arms.TwoLinkArm(gravity_vector=gravity_vector)
    if kind == "planar2":
        return arms.PlanarArm(**REACH, gravity_vector=gravity_vector)
    return arms.PlanarArm(
        **THREE_LINK, com=(0.9, 0.55, 0.3), gravity_vector=gravity_vector
    )


ARM_KINDS = ["two_link", "planar2", "planar3"]


def random_state(arm, rng, n=50):
    q = rng.uniform(-np.pi, np.pi, size=(n, arm.n_joints))
    dq = rng.normal(scale=2.0, size=(n, arm.n_joints))
    return q, dq


def central_difference(f, q, direction):
    return (f(q + H * direction) - f(q - H * direction)) / (2 * H)


# --- kinematics and dynamics ----------------------------------------------------------


@pytest.mark.parametrize("kind", ARM_KINDS)
def test_jacobian_matches_finite_differences_of_fk(kind):
    arm = make_arm(kind)
    q, _ = random_state(arm, np.random.default_rng(0))
    jac = arm.jacobian(q)
    assert jac.shape == (50, 2, arm.n_joints)
    for j in range(arm.n_joints):
        column = central_difference(arm.fk, q, np.eye(arm.n_joints)[j])
        np.testing.assert_allclose(jac[..., j], column, rtol=0, atol=FD_ATOL)


@pytest.mark.parametrize("kind", ARM_KINDS)
def test_jacobian_dot_matches_finite_differences_along_dq(kind):
    arm = make_arm(kind)
    q, dq = random_state(arm, np.random.default_rng(1))
    expected = central_difference(arm.jacobian, q, dq)  # d/dt J(q + t dq) at t=0
    # |dq| ~ 2 scales the rounding term, hence 1e-8·|dq| headroom
    np.testing.assert_allclose(arm.jacobian_dot(q, dq), expected, rtol=0, atol=3e-8)


@pytest.mark.parametrize("kind", ARM_KINDS)
def test_mass_matrix_symmetric_positive_definite(kind):
    arm = make_arm(kind)
    q, _ = random_state(arm, np.random.default_rng(2), n=500)
    mass = arm.mass_matrix(q)
    np.testing.assert_array_equal(mass, np.swapaxes(mass, -1, -2))
    assert np.linalg.eigvalsh(mass).min() > 1e-3


@pytest.mark.parametrize("kind", ARM_KINDS)
def test_mdot_minus_2c_is_skew_symmetric(kind):
    arm = make_arm(kind)
    q, dq = random_state(arm, np.random.default_rng(3))
    mass_dot = central_difference(arm.mass_matrix, q, dq)
    skew = mass_dot - 2 * arm.coriolis(q, dq)
    np.testing.assert_allclose(skew, -np.swapaxes(skew, -1, -2), rtol=0, atol=1e-7)
    # and the property is not vacuous: Ṁ - 2C is far from zero
    assert np.abs(skew).max() > 1.0


def test_planar_mass_matrix_partials_match_finite_differences():
    arm = make_arm("planar3")
    q, _ = random_state(arm, np.random.default_rng(4))
    partials = arm.mass_matrix_partials(q)
    for j in range(3):
        expected = central_difference(arm.mass_matrix, q, np.eye(3)[j])
        np.testing.assert_allclose(partials[..., j, :, :], expected, atol=1e-8)


@pytest.mark.parametrize("kind", ARM_KINDS)
def test_gravity_is_gradient_of_potential(kind):
    arm = make_arm(kind, gravity_vector=GRAVITY)
    q, _ = random_state(arm, np.random.default_rng(5))
    for j in range(arm.n_joints):
        expected = central_difference(arm.potential_energy, q, np.eye(arm.n_joints)[j])
        # |V| ~ 50 J: rounding ~1e-16·50/1e-6 ~ 5e-9
        np.testing.assert_allclose(arm.gravity(q)[..., j], expected, atol=1e-7)


def test_gravity_default_is_horizontal_plane():
    arm = arms.TwoLinkArm()
    q = np.array([[0.3, 1.0], [1.0, 2.0]])
    np.testing.assert_array_equal(arm.gravity(q), 0.0)
    np.testing.assert_array_equal(arm.potential_energy(q), 0.0)


@pytest.mark.parametrize("gravity_vector", [None, GRAVITY])
def test_planar_two_link_equals_closed_form(gravity_vector):
    closed = arms.TwoLinkArm(gravity_vector=gravity_vector)
    planar = arms.PlanarArm(**REACH, gravity_vector=gravity_vector)
    q, dq = random_state(closed, np.random.default_rng(6), n=200)
    tau = np.random.default_rng(7).normal(size=q.shape)
    for name in ["fk", "jacobian", "mass_matrix", "gravity", "potential_energy"]:
        np.testing.assert_allclose(
            getattr(planar, name)(q), getattr(closed, name)(q), rtol=0, atol=1e-9
        )
    for name in ["coriolis", "jacobian_dot", "energy"]:
        np.testing.assert_allclose(
            getattr(planar, name)(q, dq), getattr(closed, name)(q, dq), atol=1e-9
        )
    np.testing.assert_allclose(
        planar.forward_dynamics(q, dq, tau),
        closed.forward_dynamics(q, dq, tau),
        atol=1e-9,
    )


def test_two_link_matches_textbook_values():
    # Spong's planar elbow arm at q2 = 0 (straight): M11 = m1 lc1² + m2 (l1 + lc2)²
    # + I1 + I2, M12 = m2 (lc2² + l1 lc2) + I2, M22 = m2 lc2² + I2
    arm = arms.TwoLinkArm()
    expected = [
        [
            1.98 * 0.75**2 + 1.32 * (1.5 + 0.65) ** 2 + 0.6,
            1.32 * (0.65**2 + 1.5 * 0.65) + 0.2,
        ],
        [1.32 * (0.65**2 + 1.5 * 0.65) + 0.2, 1.32 * 0.65**2 + 0.2],
    ]
    np.testing.assert_allclose(arm.mass_matrix([0.4, 0.0]), expected, rtol=1e-14)
    np.testing.assert_allclose(arm.fk([0.0, 0.0]), [2.8, 0.0], atol=1e-15)


@pytest.mark.parametrize("gravity_vector", [None, GRAVITY])
def test_three_link_energy_conserved_with_rk4(gravity_vector):
    arm = make_arm("planar3", gravity_vector)
    rng = np.random.default_rng(8)
    q, dq = rng.uniform(-1, 1, size=(4, 3)), rng.normal(scale=1.5, size=(4, 3))
    energy0 = arm.energy(q, dq)
    drift = np.zeros(4)
    kinetic_max = arm.kinetic_energy(q, dq)
    for _ in range(2000):  # 2 s at 1 ms, four swings integrated as one batch
        q, dq = arms.step(arm, q, dq, np.zeros(3), 1e-3, method="rk4")
        drift = np.maximum(drift, np.abs(arm.energy(q, dq) - energy0))
        kinetic_max = np.maximum(kinetic_max, arm.kinetic_energy(q, dq))
    # relative to the energy that sloshes between links (and potential), not to E0,
    # which gravity's arbitrary zero could make tiny
    assert np.all(drift / kinetic_max < 1e-3), drift / kinetic_max
    assert np.abs(dq).max() > 1.0  # the arm really swung


def test_integrators_converge_at_their_order():
    arm = arms.TwoLinkArm(gravity_vector=GRAVITY)

    def final_q(method, dt):
        q, dq = np.array([0.5, 1.5]), np.array([1.0, -2.0])
        for _ in range(round(0.2 / dt)):
            q, dq = arms.step(arm, q, dq, [1.0, -0.5], dt, method=method)
        return q

    exact = final_q("rk4", 1e-4)
    errors = {
        method: [np.abs(final_q(method, dt) - exact).max() for dt in (4e-3, 2e-3)]
        for method in arms.METHODS
    }
    # halving dt divides the error by 2 (first order) and 16 (fourth order)
    euler, rk4 = errors["semi_implicit_euler"], errors["rk4"]
    assert euler[0] / euler[1] == pytest.approx(2, rel=0.1)
    assert rk4[0] / rk4[1] == pytest.approx(16, rel=0.1)
    assert rk4[0] < 1e-3 * euler[0]


def test_inverse_kinematics_round_trip_and_reach_start():
    arm = arms.TwoLinkArm()
    q = arms.sample_joint_box(100, np.random.default_rng(9))
    np.testing.assert_allclose(arm.inverse_kinematics(arm.fk(q)), q, atol=1e-12)
    q0 = arm.inverse_kinematics(arms.REACH_CENTRE)
    np.testing.assert_allclose(arm.fk(q0), arms.REACH_CENTRE, atol=1e-14)
    assert arms.REACH_JOINT_BOX.contains(q0)
    np.testing.assert_allclose(q0, [0.60, 2.23], atol=0.005)
    flipped = arm.inverse_kinematics(arms.REACH_CENTRE, elbow=-1)
    assert flipped[1] < 0
    np.testing.assert_allclose(arm.fk(flipped), arms.REACH_CENTRE, atol=1e-14)


# --- task helpers ---------------------------------------------------------------------


def test_joint_box_sampling_and_scaling():
    box = arms.REACH_JOINT_BOX
    q = arms.sample_joint_box(2000, np.random.default_rng(10))
    assert q.shape == (2000, 2)
    unit = box.to_unit(q)
    assert np.all(np.abs(unit) <= 1) and np.abs(unit).max() > 0.99
    np.testing.assert_allclose(box.from_unit(unit), q, atol=1e-15)
    np.testing.assert_allclose(
        box.to_unit([[0.15, 1.78], [1.05, 2.68]]), [[-1, -1], [1, 1]]
    )
    # all task targets are reachable inside the box
    arm = arms.TwoLinkArm()
    targets = arms.centre_out_targets()
    assert box.contains(arm.inverse_kinematics(targets)).all()


def test_centre_out_targets_and_sequence():
    targets = arms.centre_out_targets()
    assert targets.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(targets - [0, 1.25], axis=1), 0.25)
    sequence = arms.out_and_back(targets)
    assert sequence.shape == (16, 2)
    np.testing.assert_array_equal(sequence[::2], targets)
    np.testing.assert_array_equal(sequence[1::2], np.tile([0.0, 1.25], (8, 1)))


def test_curl_field_matrix():
    field = arms.curl_field(scale=0.4)
    np.testing.assert_allclose(
        field.matrix, 0.4 * np.array([[-10.1, -11.1], [-11.2, 11.1]])
    )
    dq = np.array([[0.3, -0.2], [1.0, 2.0]])
    np.testing.assert_allclose(field(None, dq), dq @ field.matrix.T)


# --- metrics --------------------------------------------------------------------------


def test_reaching_metrics_straight_path():
    dt = 1e-3
    s = np.linspace(0, 1, 501) ** 2  # accelerating along the line, then arrives
    start, target = np.array([0.1, 1.0]), np.array([0.4, 1.4])  # 0.5 m long
    path = start + s[:, None] * (target - start)
    m = arms.reaching_metrics(path, start, target, dt)
    assert m.final_error == 0.0
    assert m.max_deviation < 1e-15
    # error = 0.5 (1 - s²) < 0.02  <=>  s > sqrt(0.96); first sample index beyond it
    first = np.flatnonzero(0.5 * (1 - s) < 0.02)[0]
    assert m.time_to_reach == pytest.approx(first * dt)


def test_reaching_metrics_deviation_overshoot_and_misses():
    dt = 0.01
    start, target = np.array([0.0, 0.0]), np.array([1.0, 0.0])
    t = np.linspace(0, 1, 101)
    bump = np.stack([t, 0.05 * np.sin(np.pi * t)], axis=1)
    m = arms.reaching_metrics(bump, start, target, dt)
    assert m.max_deviation == pytest.approx(0.05)
    # enters the radius, leaves it again, then settles: the time counts the last entry
    error = np.r_[np.linspace(0.1, 0.0, 10), [0.05] * 5, [0.01] * 6]
    path = target + error[:, None] * [1.0, 0.0]
    m = arms.reaching_metrics(path, start, target, dt)
    assert m.time_to_reach == pytest.approx(15 * dt)
    # never settles, or diverges: a miss with infinite time
    assert arms.reaching_metrics(bump[:50], start, target, dt).time_to_reach == np.inf
    nan_end = np.r_[path, [[np.nan, np.nan]]]
    assert arms.reaching_metrics(nan_end, start, target, dt).time_to_reach == np.inf
    # starts inside: zero time
    assert arms.reaching_metrics(path[-3:], start, target, dt).time_to_reach == 0.0


def test_summarize():
    summary = arms.summarize(
        [
            arms.ReachMetrics(0.001, 0.4, 0.002),
            arms.ReachMetrics(0.003, 0.5, 0.004),
            arms.ReachMetrics(0.05, np.inf, 0.03),
        ]
    )
    assert summary["n_missed"] == 1 and summary["n_reaches"] == 3
    assert summary["final_error_max"] == 0.05
    assert summary["time_to_reach_mean"] == pytest.approx(0.45)
    assert summary["time_to_reach_max"] == 0.5
    assert summary["max_deviation_mean"] == pytest.approx(0.012)


def test_jacobian_relative_error():
    rng = np.random.default_rng(11)
    jac = arms.TwoLinkArm().jacobian(arms.sample_joint_box(2000, rng))
    assert arms.jacobian_relative_error(jac, jac).max() == 0.0
    np.testing.assert_allclose(arms.jacobian_relative_error(0.9 * jac, jac), 0.1)
    bad = arms.corrupt_jacobian(arms.TwoLinkArm().jacobian, 0.2, rng)
    q = arms.sample_joint_box(10, rng)
    np.testing.assert_allclose(
        arms.jacobian_relative_error(bad(q), arms.TwoLinkArm().jacobian(q)), 0.2
    )


# --- operational space control --------------------------------------------------------


def test_controller_default_gains_and_external_jacobian():
    arm = arms.TwoLinkArm(gravity_vector=GRAVITY)
    ctrl = arms.OperationalSpaceController(arm)
    assert ctrl.kp == 50 and ctrl.kv == pytest.approx(1.5 * np.sqrt(50))
    rng = np.random.default_rng(12)
    q, dq = arms.sample_joint_box(5, rng), rng.normal(size=(5, 2))
    target = arms.centre_out_targets()[:5]
    u = ctrl(q, dq, target)
    # supplying the analytic J and x, as arrays or as functions, changes nothing
    np.testing.assert_allclose(ctrl(q, dq, target, J=arm.jacobian(q), x=arm.fk(q)), u)
    np.testing.assert_allclose(ctrl(q, dq, target, J=arm.jacobian, x=arm.fk), u)
    # batched call equals per-sample calls
    for i in range(5):
        np.testing.assert_allclose(ctrl(q[i], dq[i], target[i]), u[i], rtol=1e-12)
    # the training signal is u without gravity compensation
    terms = ctrl.terms(q, dq, target)
    np.testing.assert_allclose(terms.task + terms.gravity, u)
    np.testing.assert_allclose(terms.gravity, arm.gravity(q))
    off = arms.OperationalSpaceController(arm, compensate_gravity=False)
    np.testing.assert_allclose(off(q, dq, target), terms.task)


def test_controller_decouples_task_space():
    # with the true model, hand acceleration = kp (x* - x) - kv ẋ + J̇ q̇ exactly
    arm = arms.TwoLinkArm(gravity_vector=GRAVITY)
    ctrl = arms.OperationalSpaceController(arm, kp=50)
    rng = np.random.default_rng(13)
    q, dq = arms.sample_joint_box(20, rng), rng.normal(size=(20, 2))
    target = rng.normal(scale=0.1, size=(20, 2)) + arms.REACH_CENTRE
    u = ctrl(q, dq, target)
    ddq = arm.forward_dynamics(q, dq, u)
    coriolis = arm.coriolis(q, dq) @ dq[..., None]
    # remove the uncompensated Coriolis torque to isolate the task-space law
    ddq_no_c = ddq + np.linalg.solve(arm.mass_matrix(q), coriolis)[..., 0]
    ddx = (arm.jacobian(q) @ ddq_no_c[..., None])[..., 0]
    dx = (arm.jacobian(q) @ dq[..., None])[..., 0]
    np.testing.assert_allclose(
        ddx, 50 * (target - arm.fk(q)) - ctrl.kv * dx, rtol=1e-9, atol=1e-9
    )


def test_controller_stays_finite_at_singularity():
    arm = arms.TwoLinkArm()
    ctrl = arms.OperationalSpaceController(arm)
    for q2 in [0.0, 1e-9, 1e-5]:  # straight arm: J loses rank
        u = ctrl([0.3, q2], [0.1, 0.1], [0.5, 1.0])
        assert np.all(np.isfinite(u)) and np.abs(u).max() < 1e3


def test_null_space_torque_does_not_move_the_hand():
    arm = make_arm("planar3")
    rest = np.array([0.5, 1.0, 0.6])
    ctrl = arms.OperationalSpaceController(arm, rest_q=rest)
    rng = np.random.default_rng(14)
    q, dq = rest + rng.uniform(-0.5, 0.5, (10, 3)), rng.normal(size=(10, 3))
    terms = ctrl.terms(q, dq, arm.fk(rest))
    assert np.abs(terms.null).max() > 1.0
    hand_accel = arm.jacobian(q) @ np.linalg.solve(
        arm.mass_matrix(q), terms.null[..., None]
    )
    np.testing.assert_allclose(hand_accel, 0.0, atol=1e-10)


def test_three_link_redundant_reach():
    arm = make_arm("planar3")
    rest = np.array([0.5, 1.0, 0.6])
    ctrl = arms.OperationalSpaceController(arm, rest_q=rest)
    start = arm.fk(rest)
    targets = start + 0.3 * np.array([[1.0, 0.0], [0.0, 0.0]])
    result = arms.run_reaches(
        arm, lambda q, dq, target, t: ctrl(q, dq, target), targets, q0=rest
    )
    summary = result.summary()
    assert summary["n_missed"] == 0 and summary["final_error_max"] < 0.01
    # the posture returns to rest when the hand does
    np.testing.assert_allclose(result.q[-1, -1], rest, atol=0.02)


# --- the REACH task (notes §4.1 and §4.5) ---------------------------------------------


def reach_task(arm, controller_fn, **kwargs):
    return arms.run_reaches(
        arm,
        controller_fn,
        arms.out_and_back(arms.centre_out_targets()),
        q0=arm.inverse_kinematics(arms.REACH_CENTRE),
        **kwargs,
    )


@pytest.fixture(scope="module")
def reach_arm():
    return arms.TwoLinkArm()


@pytest.fixture(scope="module")
def baseline(reach_arm):
    ctrl = arms.OperationalSpaceController(reach_arm, kp=50)
    return reach_task(reach_arm, lambda q, dq, target, t: ctrl(q, dq, target))


def test_analytic_baseline_reproduces_reference(baseline):
    summary = baseline.summary()
    assert baseline.hand.shape == (16, 1001, 2)
    # reference: 0.141 / 0.148 cm, 0.411 / 0.426 s, 0.26 / 0.54 cm
    assert summary["n_missed"] == 0
    assert summary["final_error_mean"] < 0.003
    assert summary["final_error_mean"] == pytest.approx(0.00141, rel=0.1)
    assert summary["time_to_reach_max"] <= 0.6
    assert summary["time_to_reach_mean"] == pytest.approx(0.411, abs=0.01)
    assert summary["max_deviation_mean"] < 0.005
    assert summary["max_deviation_mean"] == pytest.approx(0.0026, rel=0.1)


def test_gravity_compensation_gives_the_same_reaches(baseline):
    arm = arms.TwoLinkArm(gravity_vector=(0.0, -9.81))
    ctrl = arms.OperationalSpaceController(arm, kp=50)
    result = arms.run_reaches(
        arm,
        lambda q, dq, target, t: ctrl(q, dq, target),
        baseline.targets[:4],  # four reaches suffice: the laws are identical
        q0=baseline.q[0, 0],
    )
    np.testing.assert_allclose(result.hand, baseline.hand[:4], atol=1e-9)


def test_corrupted_jacobian_curves_paths(reach_arm, baseline):
    # negative control: 50 % structured J error must fail the path-deviation threshold
    ctrl = arms.OperationalSpaceController(reach_arm, kp=50)
    bad = arms.corrupt_jacobian(reach_arm.jacobian, 0.5, np.random.default_rng(0))
    result = reach_task(reach_arm, lambda q, dq, target, t: ctrl(q, dq, target, J=bad))
    summary = result.summary()
    assert summary["max_deviation_mean"] > 0.01
    assert summary["max_deviation_mean"] > 5 * baseline.summary()["max_deviation_mean"]


def test_curl_field_without_compensation_misses(reach_arm):
    ctrl = arms.OperationalSpaceController(reach_arm, kp=50)
    result = reach_task(
        reach_arm,
        lambda q, dq, target, t: ctrl(q, dq, target),
        external_force=arms.curl_field(),
    )
    summary = result.summary()
    assert summary["n_missed"] >= 8  # reference: 12 of 16, mean final error 2.9 cm
    assert summary["final_error_mean"] > 0.02
    # the recorded torque is the controller's own, without the field
    r, k = 3, 200
    expected = ctrl(result.q[r, k], result.dq[r, k], result.targets[r])
    np.testing.assert_allclose(result.u[r, k], expected)
    assert np.abs(arms.curl_field()(None, result.dq[r, k])).max() > 1.0


def test_run_reaches_records_state_and_time(reach_arm):
    calls = []

    def controller_fn(q, dq, target, t):
        calls.append(t)
        return np.zeros(2)

    q0 = np.array([0.6, 2.2])
    result = arms.run_reaches(
        reach_arm, controller_fn, [[0, 1.2], [0, 1.3]], q0=q0, reach_time=0.01
    )
    # no torque, no motion; t runs on across reaches
    np.testing.assert_allclose(result.q, np.broadcast_to(q0, (2, 11, 2)))
    np.testing.assert_allclose(calls, np.arange(20) * 1e-3)
    np.testing.assert_allclose(result.t, np.arange(11) * 1e-3)
    np.testing.assert_array_equal(result.q[1, 0], result.q[0, -1])


# --- errors ---------------------------------------------------------------------------


def test_errors():
    arm = arms.TwoLinkArm()
    with pytest.raises(ValueError, match="valid methods are 'semi_implicit_euler'"):
        arms.step(arm, [0, 1], [0, 0], [0, 0], 1e-3, method="euler")
    with pytest.raises(ValueError, match="TwoLinkArm has exactly 2 links; got 3"):
        arms.TwoLinkArm(lengths=(1, 1, 1), masses=(1, 1, 1), izz=(1, 1, 1))
    with pytest.raises(ValueError, match=r"`masses` must be 2 values \(one per link\)"):
        arms.PlanarArm(lengths=(1, 1), masses=(1,), izz=(1, 1))
    with pytest.raises(ValueError, match="at least one positive link length"):
        arms.PlanarArm(lengths=(1, -1), masses=(1, 1), izz=(1, 1))
    with pytest.raises(
        ValueError, match=r"`q` must have 2 joint values .* got shape \(3,\)"
    ):
        arm.fk([0, 1, 2])
    with pytest.raises(ValueError, match="out of reach"):
        arm.inverse_kinematics([3.0, 0.0])
    with pytest.raises(ValueError, match="`elbow` must be 1 or -1"):
        arm.inverse_kinematics([1.0, 1.0], elbow=0)
    ctrl = arms.OperationalSpaceController(arm)
    with pytest.raises(ValueError, match=r"`J` must have shape \(\.\.\., 2, 2\)"):
        ctrl([0.6, 2.2], [0, 0], [0, 1.25], J=np.eye(3))
    with pytest.raises(ValueError, match="`kp` must be a non-negative gain"):
        arms.OperationalSpaceController(arm, kp=-1)
    with pytest.raises(ValueError, match="`rest_q` must have one angle per joint"):
        arms.OperationalSpaceController(arm, rest_q=[0, 0, 0])
    with pytest.raises(ValueError, match="whole number of steps"):
        arms.run_reaches(arm, ctrl, [[0, 1.25]], q0=[0.6, 2.2], reach_time=0.0105)
    with pytest.raises(ValueError, match=r"`targets` must have shape \(n_reaches, 2\)"):
        arms.run_reaches(arm, ctrl, [0, 1.25], q0=[0.6, 2.2])
