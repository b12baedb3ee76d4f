"""マイポータル (情報提供等記録開示システム): the resident's portal, logged in to with the card."""
