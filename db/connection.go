package db

import (
	"context"
	"database/sql"
	"fmt"
)

// CreateConnection inserts c, giving it an id and timestamps when unset.
func (s *Store) CreateConnection(ctx context.Context, c *Connection) error {
	now := s.now()
	if c.ID == "" {
		c.ID = NewID(PrefixConnection)
	}
	if c.Status == "" {
		c.Status = ConnectionActive
	}
	c.CreatedAt, c.UpdatedAt = now, now
	if _, err := s.db.NewInsert().Model(c).Exec(ctx); err != nil {
		return fmt.Errorf("create connection: %w", translate(err))
	}
	return nil
}

// ConnectionByID loads one connection of the workspace.
func (s *Store) ConnectionByID(ctx context.Context, workspaceID, id string) (*Connection, error) {
	c := new(Connection)
	err := s.db.NewSelect().Model(c).Where("workspace_id = ? AND id = ?", workspaceID, id).Scan(ctx)
	if err != nil {
		return nil, translate(err)
	}
	return c, nil
}

// ListConnections returns a workspace's connections, newest first.
func (s *Store) ListConnections(ctx context.Context, workspaceID string) ([]*Connection, error) {
	var cs []*Connection
	err := s.db.NewSelect().Model(&cs).Where("workspace_id = ?", workspaceID).Order("id DESC").Scan(ctx)
	return cs, translate(err)
}

// ListAllConnections returns every connection of every workspace (for secret rotation).
func (s *Store) ListAllConnections(ctx context.Context) ([]*Connection, error) {
	var cs []*Connection
	err := s.db.NewSelect().Model(&cs).Order("id").Scan(ctx)
	return cs, translate(err)
}

// UpdateConnection writes name, config, credentials and status of c.
func (s *Store) UpdateConnection(ctx context.Context, c *Connection) error {
	c.UpdatedAt = s.now()
	res, err := s.db.NewUpdate().Model(c).
		Column("name", "config", "credentials", "status", "status_note", "updated_at").
		Where("workspace_id = ? AND id = ?", c.WorkspaceID, c.ID).Exec(ctx)
	return affectedOne(res, err)
}

// SetConnectionStatus changes only the status (and its note).
func (s *Store) SetConnectionStatus(ctx context.Context, workspaceID, id, status, note string) error {
	res, err := s.db.NewUpdate().Model((*Connection)(nil)).
		Set("status = ?, status_note = ?, updated_at = ?", status, note, s.now()).
		Where("workspace_id = ? AND id = ?", workspaceID, id).Exec(ctx)
	return affectedOne(res, err)
}

// DeleteConnection removes a connection. A connection still used by a rule is a conflict.
func (s *Store) DeleteConnection(ctx context.Context, workspaceID, id string) error {
	used, err := s.db.NewSelect().Model((*RuleAction)(nil)).
		Where("workspace_id = ? AND connection_id = ? AND archived_at IS NULL", workspaceID, id).Exists(ctx)
	if err != nil {
		return err
	}
	if used {
		return fmt.Errorf("connection is used by a rule: %w", ErrConflict)
	}
	res, err := s.db.NewDelete().Model((*Connection)(nil)).
		Where("workspace_id = ? AND id = ?", workspaceID, id).Exec(ctx)
	return affectedOne(res, err)
}

func affectedOne(res sql.Result, err error) error {
	if err != nil {
		return translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
