package main

import (
	"fmt"
	"net"
	"time"
)

// flagCheck is one validation of a parsed flag value.
type flagCheck func() error

// positiveDuration refuses a zero or negative duration: the source would
// otherwise read zero as "not set" and silently use its default.
func positiveDuration(flag string, d time.Duration) flagCheck {
	return func() error {
		if d <= 0 {
			return fmt.Errorf("--%s must be > 0, got %s", flag, d)
		}
		return nil
	}
}

// nonNegativeDuration allows zero (e.g. a snapshot TTL of 0: no caching).
func nonNegativeDuration(flag string, d time.Duration) flagCheck {
	return func() error {
		if d < 0 {
			return fmt.Errorf("--%s must be >= 0, got %s", flag, d)
		}
		return nil
	}
}

func positiveInt(flag string, n int) flagCheck {
	return func() error {
		if n <= 0 {
			return fmt.Errorf("--%s must be > 0, got %d", flag, n)
		}
		return nil
	}
}

func nonEmpty(flag, value string) flagCheck {
	return func() error {
		if value == "" {
			return fmt.Errorf("--%s must not be empty", flag)
		}
		return nil
	}
}

// hostPort wants host:port (the host may be empty: every interface).
func hostPort(flag, value string) flagCheck {
	return func() error {
		if value == "" {
			return fmt.Errorf("--%s must not be empty", flag)
		}
		if _, port, err := net.SplitHostPort(value); err != nil || port == "" {
			return fmt.Errorf("--%s must be host:port, got %q", flag, value)
		}
		return nil
	}
}

// eachNonEmpty refuses an empty element of a repeatable flag
// (--rules.file= would otherwise match nothing, or everything).
func eachNonEmpty(flag string, values []string) flagCheck {
	return func() error {
		for _, v := range values {
			if v == "" {
				return fmt.Errorf("--%s must not be empty", flag)
			}
		}
		return nil
	}
}

// validateFlags runs every check and returns the first failure; it runs
// before anything is opened, so a bad flag changes nothing on disk.
func validateFlags(checks ...flagCheck) error {
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}
