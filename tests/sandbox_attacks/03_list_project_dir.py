# expect: error
# says: not allowed
# never: pyproject.toml
import os
print(os.listdir('__PROJECT_DIR__'))
