import sys

from interp_course.cli import main

sys.exit(main())
