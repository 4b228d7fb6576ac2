"""Classical (non-learned) bandit strategies and their exact planners."""
