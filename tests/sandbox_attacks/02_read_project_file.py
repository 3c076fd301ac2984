# expect: error
# says: not allowed
# never: [project]
print(open('__PROJECT_DIR__/pyproject.toml').read())
