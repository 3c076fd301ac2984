# expect: error
# says: No such file or directory
# never: [project]
print(open('__PROJECT_DIR__/pyproject.toml').read())
