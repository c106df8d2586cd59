/**
 * Run-time permission checks. Discord's `default_member_permissions` only hides a command, and a
 * server admin can change who sees it, so every handler is guarded here again: Manage Server from
 * the member's permission bitfield in the interaction, owners from CommandOwners. Owners pass every
 * Manage Server check.
 */
import { PermissionFlagsBits } from "discord.js"
import { Effect } from "effect"
import type { Access } from "./Definitions.js"
import { AccessDenied, commandLabel, type Invocation } from "./Invocation.js"
import { CommandOwners } from "./Owners.js"

/** Manage Server, or Administrator (which implies every permission). */
export const hasManageGuild = (permissions: bigint | null): boolean =>
  permissions !== null &&
  ((permissions & PermissionFlagsBits.ManageGuild) === PermissionFlagsBits.ManageGuild ||
    (permissions & PermissionFlagsBits.Administrator) === PermissionFlagsBits.Administrator)

export const isOwner = (invocation: Invocation): Effect.Effect<boolean, never, CommandOwners> =>
  Effect.flatMap(CommandOwners, (owners) => owners.isOwner(invocation.userId))

/** The `manage` rule itself (Manage Server, or an owner), for callers that are not commands (approval buttons). */
export const mayManage = (userId: string, permissions: bigint | null): Effect.Effect<boolean, never, CommandOwners> =>
  hasManageGuild(permissions) ? Effect.succeed(true) : Effect.flatMap(CommandOwners, (owners) => owners.isOwner(userId))

/**
 * Fails with AccessDenied unless the invoking user may run a command needing `access`. `label`
 * names what was refused when it is more than the command (e.g. "/aurora events pause scope:global").
 */
export const requireAccess = (
  invocation: Invocation,
  access: Access,
  label: string = commandLabel(invocation)
): Effect.Effect<void, AccessDenied, CommandOwners> =>
  Effect.gen(function*() {
    if (access === "manage" && (yield* mayManage(invocation.userId, invocation.memberPermissions))) return
    if (access === "owner" && (yield* isOwner(invocation))) return
    return yield* new AccessDenied({ required: access, userId: invocation.userId, command: label })
  })

export const denialText = (denied: AccessDenied): string =>
  denied.required === "owner"
    ? `⛔ Only Aurora's owners can use \`${denied.command}\`.`
    : `⛔ You need the **Manage Server** permission to use \`${denied.command}\`.`
