# expect: timeout
# says: killed
class Stubborn:
    def __repr__(self):
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass
Stubborn()
