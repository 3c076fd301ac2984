# expect: error
# says: not allowed
import os
os.remove('__PROJECT_DIR__/pyproject.toml')
