package db

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// CreateRule inserts a rule and its actions in one transaction.
func (s *Store) CreateRule(ctx context.Context, r *Rule) error {
	now := s.now()
	r.ID = NewID(PrefixRule)
	r.CreatedAt, r.UpdatedAt = now, now
	return s.InTx(ctx, func(tx *Store) error {
		if r.Position == 0 {
			var max int
			if err := tx.db.NewSelect().Model((*Rule)(nil)).ColumnExpr("COALESCE(MAX(position), 0)").
				Where("workspace_id = ?", r.WorkspaceID).Scan(ctx, &max); err != nil {
				return err
			}
			r.Position = max + 1
		}
		if _, err := tx.db.NewInsert().Model(r).Exec(ctx); err != nil {
			return fmt.Errorf("create rule: %w", translate(err))
		}
		return tx.insertActions(ctx, r)
	})
}

func (s *Store) insertActions(ctx context.Context, r *Rule) error {
	for i, a := range r.Actions {
		a.ID = NewID(PrefixRuleAction)
		a.WorkspaceID, a.RuleID, a.Position = r.WorkspaceID, r.ID, i
	}
	if len(r.Actions) == 0 {
		return nil
	}
	if _, err := s.db.NewInsert().Model(&r.Actions).Exec(ctx); err != nil {
		return fmt.Errorf("create rule actions: %w", translate(err))
	}
	return nil
}

// UpdateRule replaces a rule's fields and its actions. Deliveries keep pointing at the
// old action ids, so history stays intact.
func (s *Store) UpdateRule(ctx context.Context, r *Rule) error {
	r.UpdatedAt = s.now()
	return s.InTx(ctx, func(tx *Store) error {
		res, err := tx.db.NewUpdate().Model(r).
			Column("name", "event_type", "condition", "expression", "enabled", "position", "updated_at").
			Where("workspace_id = ? AND id = ?", r.WorkspaceID, r.ID).Exec(ctx)
		if err := affectedOne(res, err); err != nil {
			return err
		}
		if err := tx.archiveActions(ctx, r.WorkspaceID, r.ID); err != nil {
			return err
		}
		return tx.insertActions(ctx, r)
	})
}

// RuleByID loads a rule with its actions.
func (s *Store) RuleByID(ctx context.Context, workspaceID, id string) (*Rule, error) {
	r := new(Rule)
	err := s.db.NewSelect().Model(r).Relation("Actions", orderActions).
		Where("rule.workspace_id = ? AND rule.id = ?", workspaceID, id).Scan(ctx)
	if err != nil {
		return nil, translate(err)
	}
	return r, nil
}

// RuleFilter narrows ListRules.
type RuleFilter struct {
	EnabledOnly bool
}

// ListRules returns a workspace's rules with their actions, in evaluation order.
func (s *Store) ListRules(ctx context.Context, workspaceID string, f RuleFilter) ([]*Rule, error) {
	var rs []*Rule
	q := s.db.NewSelect().Model(&rs).Relation("Actions", orderActions).
		Where("rule.workspace_id = ?", workspaceID)
	if f.EnabledOnly {
		q = q.Where("rule.enabled")
	}
	err := q.Order("rule.position", "rule.id").Scan(ctx)
	return rs, translate(err)
}

func (s *Store) archiveActions(ctx context.Context, workspaceID, ruleID string) error {
	_, err := s.db.NewUpdate().Model((*RuleAction)(nil)).Set("archived_at = ?", s.now()).
		Where("workspace_id = ? AND rule_id = ? AND archived_at IS NULL", workspaceID, ruleID).Exec(ctx)
	return err
}

// DeleteRule removes a rule; its actions are archived so routed deliveries keep working.
func (s *Store) DeleteRule(ctx context.Context, workspaceID, id string) error {
	return s.InTx(ctx, func(tx *Store) error {
		if err := tx.archiveActions(ctx, workspaceID, id); err != nil {
			return err
		}
		res, err := tx.db.NewDelete().Model((*Rule)(nil)).
			Where("workspace_id = ? AND id = ?", workspaceID, id).Exec(ctx)
		return affectedOne(res, err)
	})
}

// RuleActionByID loads one rule action.
func (s *Store) RuleActionByID(ctx context.Context, workspaceID, id string) (*RuleAction, error) {
	a := new(RuleAction)
	err := s.db.NewSelect().Model(a).Where("workspace_id = ? AND id = ?", workspaceID, id).Scan(ctx)
	if err != nil {
		return nil, translate(err)
	}
	return a, nil
}

func orderActions(q *bun.SelectQuery) *bun.SelectQuery {
	return q.Where("archived_at IS NULL").Order("position")
}
