"""Classic control with physical parameters drawn per trial: cartpole, pendulum and acrobot.

Each family steps gymnasium 1.x's equations (``CartPole-v1``, ``Pendulum-v1``, ``Acrobot-v1``)
line by line, vectorised over the batch, with the physical constants that gymnasium keeps fixed
(masses, lengths, gravity, ...) replaced by per-task tensors. Every trial draws each constant
uniformly from its configured range (``<name>_range: [low, high]``, defaults centred on
gymnasium's values) and plays ``episodes`` episodes on the same constants; an episode ends on
gymnasium's termination or after ``max_steps`` steps. ``tests/test_classic_control.py`` steps
gymnasium's own environments beside these families and checks the states agree to 1e-5.

Actions are discrete everywhere (the learned algorithms of this suite are discrete-action):

- ``cartpole-params`` (:mod:`tasks.classic_control.cartpole`): 2 actions, push left / right with
  ``force_mag`` (as gymnasium);
- ``acrobot-params`` (:mod:`tasks.classic_control.acrobot`): 3 actions, torque -1, 0, +1 on the
  second joint (as gymnasium);
- ``pendulum-params`` (:mod:`tasks.classic_control.pendulum`): ``torque_levels`` actions, torques
  evenly spaced in [-max_torque, max_torque] (gymnasium's Pendulum is continuous; this is the one
  departure).

Observations are gymnasium's (float32): cartpole (x, x_dot, theta, theta_dot); pendulum
(cos theta, sin theta, theta_dot); acrobot (cos t1, sin t1, cos t2, sin t2, dt1, dt2). The state
is kept in ``dtype`` (float32 by default; float64 reproduces gymnasium's float64 states over long
trajectories).

Protocol: the suite's reference runs (``sweep full``, ``configs/sweeps/reference/``) follow Packer
et al. 2018: train on their ranges (``task.ranges=packer``) and evaluate on them and, held out, on
their extreme ranges (``eval.task.ranges=packer-extreme``), with their success measures. The other
common choice, gymnasium's constants with every constant drawn from a range around them, is the
families' default, ``ranges=suite``.

The config fields, sampling and Monte-Carlo reference scores shared by the three families live in
:mod:`tasks.classic_control.common`; each family module holds its config, its equations of motion
and its oracle. ``tasks/__init__.py`` imports the family modules, which registers them.
"""
