package hop

import "testing"

func TestDrop(t *testing.T) {
	conn := []string{"close, X-Private", " keep-alive "}
	for k, want := range map[string]bool{
		"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Te": true,
		"Upgrade": true, "Proxy-Authorization": true, "X-Private": true,
		"Content-Type": false, "Idempotency-Key": false, "X-Public": false,
	} {
		if got := Drop(k, conn); got != want {
			t.Errorf("Drop(%q) = %v, want %v", k, got, want)
		}
	}
}
