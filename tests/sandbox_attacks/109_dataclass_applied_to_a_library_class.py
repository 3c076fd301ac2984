# expect: ok
# says: put back
# a library helper sets the class's attributes: the call's own code stores nothing
import dataclasses
dataclasses.dataclass(Integer)
'ok'
