# expect: timeout
# says: killed
while True:
    try:
        while True:
            pass
    except BaseException:
        pass
