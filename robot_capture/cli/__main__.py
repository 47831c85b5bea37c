import sys

from robot_capture.cli import main

sys.exit(main())
