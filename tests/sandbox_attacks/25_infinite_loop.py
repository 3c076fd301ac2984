# expect: timeout
# says: longer than
while True:
    pass
