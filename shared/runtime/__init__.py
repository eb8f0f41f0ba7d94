"""Runtime: the robot-side software of the PiE robotics kit.

The library half (``runtime.*``) is shared by the three services (``runtime.service.*``).
"""

__version__ = "0.1.0"
