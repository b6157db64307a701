package releasegate.example_test

import data.releasegate.example

test_allow if example.allow with input as {"environment": "prod", "score": 2}
