package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sluice-dev/sluice/state"
)

// Each process holds an exclusive flock on <data-dir>/owners/<owner>.lock
// for its lifetime. The kernel drops the lock when the process dies, even
// by kill -9, so a new process can tell a dead lease owner from a live
// one and take over the dead one's tasks at once instead of waiting for
// their leases to expire.

func lockOwner(dataDir, owner string) (*os.File, error) {
	dir := filepath.Join(dataDir, "owners")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("owner lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, owner+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("owner lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("owner lock %s: %w", f.Name(), err)
	}
	return f, nil
}

func (s *Service) unlockOwner() {
	if s.lock == nil {
		return
	}
	name := s.lock.Name()
	s.lock.Close()
	os.Remove(name)
	s.lock = nil
}

// ownerAlive reports whether the process that owns leases under owner is
// still running: its lock file exists and is locked.
func ownerAlive(dataDir, owner string) (bool, error) {
	name := filepath.Join(dataDir, "owners", owner+".lock")
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	// We got the lock: its owner is gone. Remove the file while holding
	// the lock so no one mistakes it for live.
	os.Remove(name)
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false, nil
}

// reapDeadOwners releases the leases of lease owners whose process is
// gone, so their tasks (running jobs among them) are claimable now.
func (s *Service) reapDeadOwners(ctx context.Context) error {
	var owners []string
	if err := s.st.View(ctx, func(tx *state.Tx) (err error) {
		owners, err = tx.LeaseOwners(s.now())
		return err
	}); err != nil {
		return fmt.Errorf("jobs: reap owners: %w", err)
	}
	for _, o := range owners {
		if o == s.owner {
			continue
		}
		alive, err := ownerAlive(s.cfg.DataDir, o)
		if err != nil {
			s.log.Warn("jobs: cannot check lease owner", "owner", o, "err", err)
			continue
		}
		if alive {
			continue
		}
		var n int
		if err := s.st.Update(ctx, func(tx *state.Tx) (err error) {
			n, err = tx.ReleaseOwner(o)
			return err
		}); err != nil {
			return fmt.Errorf("jobs: reap owner %s: %w", o, err)
		}
		s.log.Info("jobs: released leases of a dead process", "owner", o, "tasks", n)
	}
	return nil
}
