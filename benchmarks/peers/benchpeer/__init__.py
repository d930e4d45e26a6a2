"""A minimal Channels 1.1.8 project: the Daphne 1.4.2 stack's side of each scenario."""
