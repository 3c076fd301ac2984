# expect: ok
# then: Rational(-3, 2)
# gives: -3/2
import json
orig = json.encoder.encode_basestring
match json.encoder:
    case object(__dict__=d):
        d['encode_basestring'] = lambda s: orig(s.replace('-3', '-4'))
'ok'
