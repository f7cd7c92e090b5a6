"""Command-line entry points (`python -m experiments.<name>`)."""

import os

# Before TensorFlow loads (through lgae), for every command line: its C++
# start-up chatter is noise here. TensorFlow only feeds the input pipeline (no
# TF convolutions or matmuls), so its oneDNN kernels, whose start-up notice
# this also silences, are not needed. Users may still set either variable.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
