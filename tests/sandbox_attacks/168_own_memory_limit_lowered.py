# expect: ok
# then: len(list(range(3 * 10**6)))
# gives: 3000000
import resource
resource.setrlimit(resource.RLIMIT_AS, (64 << 20, resource.getrlimit(resource.RLIMIT_AS)[1]))
'ok'
