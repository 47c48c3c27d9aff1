package main

import (
	"context"
	"errors"
)

// runUser handles `fanout user promote EMAIL`.
func runUser(ctx context.Context, cfg Config, args []string) error {
	if len(args) != 2 || args[0] != "promote" {
		return errors.New("usage: fanout user promote EMAIL")
	}
	s, done, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer done()
	return s.PromoteUser(ctx, args[1])
}
