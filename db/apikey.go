package db

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrInvalidKey is returned for any key that does not authenticate: malformed, unknown,
// wrong secret or revoked. Callers must not tell these apart to the client.
var ErrInvalidKey = errors.New("invalid api key")

const keyPrefix = "fo_"

// CreateAPIKey generates a key of the given scope and stores only its prefix and hash.
// The returned plaintext is shown to the user once and never again.
func (s *Store) CreateAPIKey(ctx context.Context, workspaceID, name, scope string) (string, *APIKey, error) {
	if scope != ScopeIngest && scope != ScopeAdmin {
		return "", nil, fmt.Errorf("scope must be %q or %q", ScopeIngest, ScopeAdmin)
	}
	prefix := keyPrefix + randomToken(8)
	plaintext := prefix + "_" + randomToken(24)
	k := &APIKey{
		ID: NewID(PrefixAPIKey), WorkspaceID: workspaceID, Name: name, Scope: scope,
		Prefix: prefix, Hash: hashKey(plaintext), CreatedAt: s.now(),
	}
	if _, err := s.db.NewInsert().Model(k).Exec(ctx); err != nil {
		return "", nil, fmt.Errorf("create api key: %w", translate(err))
	}
	return plaintext, k, nil
}

// AuthenticateAPIKey finds the key by its prefix and compares hashes in constant time.
func (s *Store) AuthenticateAPIKey(ctx context.Context, plaintext string) (*APIKey, error) {
	prefix, _, ok := splitKey(plaintext)
	if !ok {
		return nil, ErrInvalidKey
	}
	k := new(APIKey)
	err := s.db.NewSelect().Model(k).Where("prefix = ?", prefix).Scan(ctx)
	if err != nil {
		if errors.Is(translate(err), ErrNotFound) {
			// Spend the same hashing work as a hit so timing says nothing.
			subtle.ConstantTimeCompare(hashKey(plaintext), hashKey(plaintext+"x"))
			return nil, ErrInvalidKey
		}
		return nil, err
	}
	if subtle.ConstantTimeCompare(k.Hash, hashKey(plaintext)) != 1 || k.RevokedAt != nil {
		return nil, ErrInvalidKey
	}
	return k, nil
}

// TouchAPIKey records use of a key, at most once a minute per key to spare writes.
func (s *Store) TouchAPIKey(ctx context.Context, k *APIKey) error {
	now := s.now()
	if k.LastUsedAt != nil && now.Sub(*k.LastUsedAt) < time.Minute {
		return nil
	}
	_, err := s.db.NewUpdate().Model((*APIKey)(nil)).Set("last_used_at = ?", now).
		Where("id = ?", k.ID).Exec(ctx)
	return err
}

// ListAPIKeys returns a workspace's keys, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, workspaceID string) ([]*APIKey, error) {
	var ks []*APIKey
	err := s.db.NewSelect().Model(&ks).Where("workspace_id = ?", workspaceID).Order("id DESC").Scan(ctx)
	return ks, translate(err)
}

// RevokeAPIKey marks a key revoked; it stops authenticating at once.
func (s *Store) RevokeAPIKey(ctx context.Context, workspaceID, id string) error {
	res, err := s.db.NewUpdate().Model((*APIKey)(nil)).Set("revoked_at = ?", s.now()).
		Where("workspace_id = ? AND id = ? AND revoked_at IS NULL", workspaceID, id).Exec(ctx)
	return affectedOne(res, err)
}

func splitKey(plaintext string) (prefix, secret string, ok bool) {
	if !strings.HasPrefix(plaintext, keyPrefix) || len(plaintext) > 128 {
		return "", "", false
	}
	i := strings.LastIndexByte(plaintext, '_')
	if i <= len(keyPrefix) {
		return "", "", false
	}
	return plaintext[:i], plaintext[i+1:], true
}

func hashKey(plaintext string) []byte {
	sum := sha256.Sum256([]byte(plaintext))
	return sum[:]
}

// randomToken returns n random letters and digits (no '_', which separates key parts).
func randomToken(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	out := make([]byte, 0, n)
	buf := make([]byte, 1)
	for len(out) < n {
		rand.Read(buf)
		// Rejection sampling keeps every character equally likely.
		if int(buf[0]) < 256-256%len(alphabet) {
			out = append(out, alphabet[int(buf[0])%len(alphabet)])
		}
	}
	return string(out)
}

// RandomSecret returns n random bytes, base64url encoded (for session and invite tokens).
func RandomSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
