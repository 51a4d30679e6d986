package admin

import (
	"testing"

	"go.uber.org/goleak"
)

// The queue tests run an embedded NATS server and a worker: both must be
// gone when the tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
