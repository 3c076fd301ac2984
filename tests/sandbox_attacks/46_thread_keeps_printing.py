# expect: ok
# says: threads running
import threading
def spam():
    while True:
        print('late output')
threading.Thread(target=spam, daemon=True).start()
