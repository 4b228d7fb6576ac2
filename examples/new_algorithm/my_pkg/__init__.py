"""An example of a user's own meta-RL algorithm package for metarl-bench."""
