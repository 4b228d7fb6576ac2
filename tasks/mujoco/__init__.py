"""MuJoCo locomotion families with continuous actions (optional extra: ``metarl-bench[mujoco]``).

- ``halfcheetah-vel`` (:mod:`tasks.mujoco.half_cheetah`): HalfCheetah must run at a target
  velocity drawn per trial from [0, 3] (PEARL/ProMP/VariBAD code; MAML: [0, 2]):
  reward = -|forward velocity - target| - ctrl_cost * |a|^2.
- ``halfcheetah-dir`` (:mod:`tasks.mujoco.half_cheetah`): HalfCheetah must run forward or
  backward, drawn per trial with probability 1/2 each:
  reward = direction * forward velocity - ctrl_cost * |a|^2.
- ``halfcheetah-params`` (:mod:`tasks.mujoco.half_cheetah`) and ``hopper-params``
  (:mod:`tasks.mujoco.hopper`): gymnasium's HalfCheetah-v5 and Hopper-v5 rewards, with every
  body's mass (and inertia), every joint's damping and every geom's friction scaled per trial by
  factors drawn log-uniformly from ``[1/s, s]`` (as rand_param_envs does for PEARL).

:mod:`tasks.mujoco.simulator` holds the stateless batched MuJoCo kernel and the install check;
:mod:`tasks.mujoco.common` the functional family over it (state, stepping, references) and the
per-trial dynamics shared by the ``-params`` families. ``tasks/__init__.py`` imports the family
modules, which registers them.
"""
