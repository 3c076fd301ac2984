# expect: timeout
# says: longer than
while True:
    print('spam')
