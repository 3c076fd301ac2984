# expect: timeout
# says: longer than
# the sandbox calls repr() on the last value: that is user code too, under the same timer
class Loop:
    def __repr__(self):
        while True:
            pass
Loop()
