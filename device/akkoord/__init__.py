"""akkoord: a tabletop recorder that records only when both parties press "akkoord".

Nothing here touches hardware at import time; adapters (gpiozero, PyAudio, pyserial)
are imported only where they are used.
"""

__version__ = "0.1.0"
