package models

// Audit actions: every name an entry can carry, in this one file. They are
// stable strings: stored, chained, filtered on and exported. A new action
// goes here and into AuditActions.
const (
	ActionSignup          = "account.signup"
	ActionAccountCreated  = "account.created"
	ActionUserCreated     = "user.created"
	ActionLoginSucceeded  = "login.succeeded"
	ActionLoginFailed     = "login.failed"
	ActionLogout          = "logout"
	ActionPasswordChanged = "password.changed"
	ActionLanguageChanged = "user.language_changed"
	ActionTimeZoneChanged = "user.time_zone_changed"
	ActionSessionRevoked  = "session.revoked"
	ActionReauthenticated = "session.reauthenticated"
	ActionKeyCreated      = "key.created"
	ActionSecretRevealed  = "secret.revealed"
	ActionSecretReset     = "secret.reset"
	ActionOldSecretEnded  = "secret.ended"
	ActionKeyRenamed      = "key.renamed"
	ActionKeyDeactivated  = "key.deactivated"
	ActionKeyActivated    = "key.activated"
	ActionAccessDenied    = "access.denied"
	ActionSubaccountNew   = "subaccount.created"
	ActionLimitRequested  = "limit_request.created"
	ActionLimitApproved   = "limit_request.approved"
	ActionLimitDenied     = "limit_request.denied"
	ActionLimitChanged    = "limit.changed"

	// The audit trail's own.
	ActionAuditExported = "audit.exported"
	ActionAuditReviewed = "audit.reviewed"
	// ActionAuditKeyRotated hands the chain over to a new audit key: the
	// entry is linked under the old key and names the new one.
	ActionAuditKeyRotated = "audit.key_rotated"
	// ActionAuditChainKeyed follows a log written before entries were
	// keyed: it is the first keyed entry and covers the unkeyed ones.
	ActionAuditChainKeyed = "audit.chain_keyed"

	// People: members, invitations, two-factor sign-in, password reset
	// and suspension.
	ActionMemberInvited      = "member.invited"
	ActionInvitationRevoked  = "invitation.revoked"
	ActionInvitationAccepted = "invitation.accepted"
	ActionMemberChanged      = "member.changed"
	ActionMemberRemoved      = "member.removed"
	ActionAccountSwitched    = "account.switched"
	ActionRequire2FAChanged  = "account.require_2fa"
	ActionPasswordResetAsked = "password.reset_requested"
	ActionPasswordReset      = "password.reset"
	ActionTOTPEnabled        = "2fa.enabled"
	ActionTOTPDisabled       = "2fa.disabled"
	ActionRecoveryCodesNew   = "2fa.recovery_codes"
	ActionRecoveryCodeUsed   = "2fa.recovery_code_used"
	ActionSecondFactorFailed = "login.second_factor_failed"
	ActionAccountSuspended   = "account.suspended"
	ActionAccountReinstated  = "account.reinstated"
)

// AuditActions lists the action names for the filter menu.
func AuditActions() []string {
	return []string{
		ActionSignup, ActionAccountCreated, ActionUserCreated, ActionLoginSucceeded, ActionLoginFailed, ActionLogout,
		ActionPasswordChanged, ActionLanguageChanged, ActionTimeZoneChanged, ActionSessionRevoked, ActionReauthenticated, ActionKeyCreated, ActionSecretRevealed,
		ActionSecretReset, ActionOldSecretEnded, ActionKeyRenamed, ActionKeyDeactivated, ActionKeyActivated, ActionSubaccountNew,
		ActionLimitRequested, ActionLimitApproved, ActionLimitDenied, ActionLimitChanged, ActionAccessDenied,
		ActionAuditExported, ActionAuditReviewed, ActionAuditKeyRotated, ActionAuditChainKeyed,
		ActionMemberInvited, ActionInvitationRevoked, ActionInvitationAccepted, ActionMemberChanged, ActionMemberRemoved,
		ActionAccountSwitched, ActionRequire2FAChanged, ActionPasswordResetAsked, ActionPasswordReset, ActionTOTPEnabled,
		ActionTOTPDisabled, ActionRecoveryCodesNew, ActionRecoveryCodeUsed, ActionSecondFactorFailed,
		ActionAccountSuspended, ActionAccountReinstated,
	}
}
