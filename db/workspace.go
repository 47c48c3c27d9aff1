package db

import (
	"context"
	"fmt"
)

// CreateWorkspace inserts a workspace with a new id.
func (s *Store) CreateWorkspace(ctx context.Context, name string) (*Workspace, error) {
	w := &Workspace{ID: NewID(PrefixWorkspace), Name: name, CreatedAt: s.now()}
	if _, err := s.db.NewInsert().Model(w).Exec(ctx); err != nil {
		return nil, fmt.Errorf("create workspace: %w", translate(err))
	}
	return w, nil
}

// WorkspaceByID loads one workspace.
func (s *Store) WorkspaceByID(ctx context.Context, id string) (*Workspace, error) {
	w := new(Workspace)
	if err := s.db.NewSelect().Model(w).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, translate(err)
	}
	return w, nil
}

// ListWorkspaces returns every workspace (for the reconciler and operators).
func (s *Store) ListWorkspaces(ctx context.Context) ([]*Workspace, error) {
	var ws []*Workspace
	err := s.db.NewSelect().Model(&ws).Order("created_at").Scan(ctx)
	return ws, translate(err)
}
