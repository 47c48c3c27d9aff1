package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/fanout-dev/fanout/db/secrets"
	"github.com/fanout-dev/fanout/jobs"
)

// runSecrets handles `fanout secrets generate|rotate`. To rotate: put the new key first
// in FANOUT_SECRET_KEY, keep the old one after it (new:…,old:…), run rotate, then drop
// the old key.
func runSecrets(ctx context.Context, cfg Config, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: fanout secrets generate|rotate")
	}
	switch args[0] {
	case "generate":
		key, err := secrets.GenerateKey()
		if err != nil {
			return err
		}
		fmt.Println(key)
		return nil
	case "rotate":
		keyring, err := loadKeyring(cfg, newLogger(cfg))
		if err != nil {
			return err
		}
		s, done, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer done()
		conns, err := s.ListAllConnections(ctx)
		if err != nil {
			return err
		}
		n := 0
		for _, c := range conns {
			if len(c.Credentials) == 0 || !keyring.NeedsRotation(c.Credentials) {
				continue
			}
			creds, err := jobs.OpenCredentials(keyring, c)
			if err != nil {
				return fmt.Errorf("connection %s: %w", c.ID, err)
			}
			if err := jobs.SealCredentials(keyring, c, creds); err != nil {
				return err
			}
			if err := s.UpdateConnection(ctx, c); err != nil {
				return err
			}
			n++
		}
		fmt.Fprintf(os.Stderr, "re-encrypted %d connection(s) under key %s\n", n, keyring.CurrentID())
		return nil
	}
	return errors.New("usage: fanout secrets generate|rotate")
}
