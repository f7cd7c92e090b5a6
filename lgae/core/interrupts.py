"""Graceful stops: SIGTERM (preemption) and SIGINT (Ctrl-C) become a flag.

The training loop reads `requested` once per step, right after the step: if it
is set, that step is logged and checkpointed and the loop returns, so nothing
done so far is lost. A signal that arrives later in a step (during an eval or a
checkpoint write) is acted on after the next step, never without a checkpoint.
A second signal of the same kind falls through to the previous handler (a hard
stop: the default for SIGTERM, KeyboardInterrupt for SIGINT), in case the first
one is not being honoured; Orbax's atomic writes keep the workdir resumable.
Python runs signal handlers between bytecodes of the main thread, so two
signals that both arrive inside one long call into C (an XLA compilation, a
blocking wait) count as one: the second kills at once only if it comes after
the main thread has seen the first (in the training loop: after the step in
progress).

`train.train_and_evaluate` installs the handlers on its first line: a signal
before the first step (data checks, classifier training, restore) ends the run
before training starts, with a checkpoint at the current step (a fresh run's
initial state), and one during the first step's compilation is acted on after
that step. Outside `train_and_evaluate` the signals have their default effect;
a checkpoint write is never left half-visible (see lgae.core.checkpointing).
"""

import signal
import threading


class StopOnSignal:
  """Context manager that turns SIGTERM/SIGINT into `requested = True`."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self.signal_name = ''
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.requested:  # second signal: give up on the graceful path.
      signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
      signal.raise_signal(signum)
      return
    self.requested = True
    self.signal_name = signal.Signals(signum).name

  def __enter__(self):
    # Handlers can only be installed from the main thread (e.g. not inside
    # some notebook executors); elsewhere the default behaviour stays.
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}
    return False
