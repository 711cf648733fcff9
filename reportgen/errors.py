"""The one error type that means "the user's input is wrong, and here is how to fix it"."""


class InputError(Exception):
    """A problem with the run's inputs, explained in one line.

    The CLI prints the message without a traceback and exits non-zero. The message names the file
    or option and says what to change, e.g. "--layer 'layr4' not found in model.py; did you mean 'layer4'?".
    """
