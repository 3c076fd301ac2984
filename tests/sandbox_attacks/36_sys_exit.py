# expect: error
# says: SystemExit
import sys
sys.exit(3)
