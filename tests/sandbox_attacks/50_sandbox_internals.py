# expect: ok
# says: None
# the sandbox's own modules are importable inside (they were loaded before the fork) but hold nothing of the
# parent: its Sandbox object, sessions and environment live in another process
import tool_sandbox.sandbox as parent_side
print(parent_side._default)
