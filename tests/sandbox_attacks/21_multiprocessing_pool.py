# expect: error
# says: No such file or directory
import multiprocessing
multiprocessing.Pool(4).map(abs, range(10))
