# expect: ok
# says: ['.venv']
# never: pyproject.toml
# only the site-packages of the venv is mounted under the project path; nothing else of the project
import os
print(os.listdir('__PROJECT_DIR__'))
