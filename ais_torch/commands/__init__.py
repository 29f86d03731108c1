"""One thin shell per verb: parse the command line, call the library, print what happened.

``ais-torch <verb>`` and ``python -m ais_torch.<verb>`` both land here; nothing else imports
this package.
"""
