package queue

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

const (
	crashChildEnv = "SWITCHBOARD_QUEUE_CRASH_DIR"
	crashN        = 200
)

// crashChild puts crashN messages into the queue in dir, printing each id
// once Put has returned, and then waits to be killed.
func crashChild(dir string) {
	ctx := context.Background()
	q, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for i := range crashN {
		id, err := q.Put(ctx, post("crash", fmt.Sprintf("body %d", i)))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("ok", id)
	}
	select {} // killed here, or earlier
}

// TestCrash kills a process with SIGKILL right after its last Put returned
// and checks that a queue reopened on the same directory holds every
// message that was acknowledged. The kill does not lose the OS page cache,
// so this checks that Put acknowledges only what the store has written;
// SyncAlways is what carries that over a power loss.
func TestCrash(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "ok" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child: %s", sc.Text())
		}
		acked = append(acked, f[1])
		if len(acked) == crashN {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(acked) != crashN {
		t.Fatalf("child acknowledged %d puts, want %d", len(acked), crashN)
	}

	q := openQueue(t, dir)
	for _, id := range acked {
		r, err := q.Get(t.Context(), id)
		if err != nil || r.State != Pending {
			t.Errorf("acknowledged %s after the kill: %+v, %v", id, r, err)
		}
	}
	if d := workDepth(t, q); d != crashN {
		t.Errorf("%d messages in the stream after the kill, want %d", d, crashN)
	}
	got := deliverAll(t, q, crashN)
	for _, id := range acked {
		if _, ok := got[id]; !ok {
			t.Errorf("%s was not delivered after the restart", id)
		}
	}
}
