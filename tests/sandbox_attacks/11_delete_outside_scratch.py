# expect: error
# says: Read-only file system
import os
os.remove('__PROJECT_DIR__/pyproject.toml')
