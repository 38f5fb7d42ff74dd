use super::{Store, StoreError};
use crate::domain::{Role, RoomName};

#[derive(Debug, Clone)]
pub struct RoomRow {
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct MemberRow {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub joined_at: i64,
}

type RoomTuple = (i64, String, i64, i64);

fn room((id, name, owner_id, created_at): RoomTuple) -> RoomRow {
    RoomRow {
        id,
        name,
        owner_id,
        created_at,
    }
}

/// Roles are written by this code only (and checked by the schema), so an unknown value
/// means a corrupt row: report it as a database error rather than guessing.
fn role(raw: &str) -> Result<Role, StoreError> {
    raw.parse().map_err(|e: crate::domain::ParseRoleError| {
        StoreError::Database(sqlx::Error::Decode(e.into()))
    })
}

impl Store {
    /// Creates the room and makes `owner_id` its owner, in one transaction: a room never
    /// exists without its owner.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure (nothing is written then).
    pub async fn create_room(
        &self,
        name: &RoomName,
        owner_id: i64,
        now: i64,
    ) -> Result<RoomRow, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO rooms (name, owner_id, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name.as_str())
        .bind(owner_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(owner_id)
        .bind(Role::Owner.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RoomRow {
            id,
            name: name.as_str().to_owned(),
            owner_id,
            created_at: now,
        })
    }

    /// The rooms `user_id` belongs to with ids below `before`, newest first, at most
    /// `limit`, with the user's role in each.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn rooms_of_user(
        &self,
        user_id: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<(RoomRow, Role)>, StoreError> {
        let rows: Vec<(i64, String, i64, i64, String)> = sqlx::query_as(
            "SELECT r.id, r.name, r.owner_id, r.created_at, m.role \
             FROM rooms r JOIN room_members m ON m.room_id = r.id \
             WHERE m.user_id = $1 AND r.id < $2 ORDER BY r.id DESC LIMIT $3",
        )
        .bind(user_id)
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, name, owner_id, created_at, r)| {
                Ok((room((id, name, owner_id, created_at)), role(&r)?))
            })
            .collect()
    }

    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn room(&self, room_id: i64) -> Result<Option<RoomRow>, StoreError> {
        let row: Option<RoomTuple> =
            sqlx::query_as("SELECT id, name, owner_id, created_at FROM rooms WHERE id = $1")
                .bind(room_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(room))
    }

    /// `None` when the user is not a member (or the room doesn't exist).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn member_role(
        &self,
        room_id: i64,
        user_id: i64,
    ) -> Result<Option<Role>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2")
                .bind(room_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(r,)| role(&r)).transpose()
    }

    /// Deletes the room and, by cascade, its memberships. Returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn delete_room(&self, room_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM rooms WHERE id = $1")
            .bind(room_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// # Errors
    /// [`StoreError::Conflict`] when the user already is a member.
    pub async fn add_member(
        &self,
        room_id: i64,
        user_id: i64,
        role: Role,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    /// Members by role (owner first), then by when they joined.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn members(&self, room_id: i64) -> Result<Vec<MemberRow>, StoreError> {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT u.id, u.username, m.role, m.joined_at \
             FROM room_members m JOIN users u ON u.id = m.user_id \
             WHERE m.room_id = $1 \
             ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'moderator' THEN 1 ELSE 2 END, m.joined_at, u.id",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(user_id, username, r, joined_at)| {
                Ok(MemberRow {
                    user_id,
                    username,
                    role: role(&r)?,
                    joined_at,
                })
            })
            .collect()
    }

    /// Changes a member's role; returns whether the user was a member.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn set_member_role(
        &self,
        room_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE room_members SET role = $1 WHERE room_id = $2 AND user_id = $3")
                .bind(role.as_str())
                .bind(room_id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends a membership and records that `by` removed them (see [`Store::is_removed`]), in
    /// one transaction; returns whether there was a membership (nothing is recorded if not).
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn remove_member(
        &self,
        room_id: i64,
        user_id: i64,
        by: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO room_removals (room_id, user_id, removed_by, removed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, user_id) \
             DO UPDATE SET removed_by = excluded.removed_by, removed_at = excluded.removed_at",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Whether a moderator or the owner removed `user_id` from the room and nobody of that
    /// rank brought them back since.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn is_removed(&self, room_id: i64, user_id: i64) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT removed_at FROM room_removals WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Forgets a removal: a moderator or the owner brought the user back.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn clear_removal(&self, room_id: i64, user_id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM room_removals WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many rooms `user_id` owns.
    ///
    /// # Errors
    /// [`StoreError::Database`] on a database failure.
    pub async fn rooms_owned(&self, user_id: i64) -> Result<usize, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rooms WHERE owner_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
