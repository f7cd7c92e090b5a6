"""Experiment configs: the paper's architecture tables as ConfigDicts."""
